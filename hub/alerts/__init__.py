"""Door alerts: visits, the claim state machine, camera node health, and the records functions
privacy calls (erasure, retention)."""
