"""Control and behavior cloning: JAX systems, LQR, policies, rollout backends (JAX, C MuJoCo), the BC engine, ablations, landscape, TD3 experts."""
