"""The spiral-GMM case study: GMM datasets pushed through one shared spiral T, learned by MPM."""
