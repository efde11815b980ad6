"""Jinja2 prompt templates for the planner and critic."""
