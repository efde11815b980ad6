"""The agent: program model and validation, executor, planner, CLI."""
