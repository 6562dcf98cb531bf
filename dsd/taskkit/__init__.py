"""What a task stands on."""
