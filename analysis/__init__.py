"""What is measured and drawn of a trained model: image metrics, disentanglement scores, figures."""
