"""Node processes: each module's ``main(ctx)`` is started by the manager (see process_table)."""
