"""The linear theory (notebooks 01-03): marginal stability, the cliff of LQR costs, SGD noise and its Ornstein-Uhlenbeck limit."""
