"""Door alerts: visits, the claim state machine, and camera node health."""
