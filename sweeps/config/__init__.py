"""The sweep-file schema: pydantic models of what a sweep file may say."""

from sweeps.config._schema import *  # noqa: F403
