"""What the tests and the bench share: a signing API client, service processes and
waiting on a condition with a deadline. Neither imports the other (import contracts)."""
