"""What runs the pipeline: the process table, the manager and its prepare step, the node
entry point, the CLI, doctor, model report, recording and the status line."""
