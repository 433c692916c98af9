"""The floor: position ingest, occupancy grids, zones and journeys, insights, the report."""
