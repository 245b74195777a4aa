"""QuickBooks Online connector: OAuth, tokens, accounting client, limiter, account mapping."""
