"""Notifications: the daemon's alerts sent where the operator is (phone, mail, chat) through apprise.

`destinations` keeps the destinations (their URLs carry tokens: encrypted in the SecretStore, never shown),
`dispatch` queues, deduplicates, rate-limits and delivers each message off the event loop with retries,
`service` ties them to the alert tracker. See docs/notifications.md.
"""
