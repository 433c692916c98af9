"""Web Push to staff phones: subscriptions (one per phone), the VAPID key, the sender."""
