"""The sweep loop: create or resume, coordinate workers, run trials, record outcomes."""
