"""Reading TensorBoard event files without TensorFlow: framing, protos, series."""
