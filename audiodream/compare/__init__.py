"""Stage `compare`: this agent against RLlib PPO and RLlib DreamerV3 at the same env steps."""
