"""The model-free reference: RLlib PPO with a recurrent token policy (stage `baseline`)."""
