"""Planner, program model and validation, executor, critic, loop, sessions, CLI."""
