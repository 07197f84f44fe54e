"""Dataset assembly, preregistration, mixed-effects models, power simulation and reports."""
