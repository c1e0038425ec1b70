"""Scenario simulator and technician self-test."""
