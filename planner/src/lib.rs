//! berth-planner: turns a compose Project and the Engine's observed state into a plan of actions.
