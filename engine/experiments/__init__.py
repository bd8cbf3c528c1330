"""Experiment studies: many training runs from one plan, their statistics, tables and plots."""
