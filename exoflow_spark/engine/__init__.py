"""The engine: the recovery planner and cost model, refs, the run loop, restore and gc."""
