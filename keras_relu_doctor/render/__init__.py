"""Rendering reports: text, JSON, Markdown, HTML and a TensorBoard text summary."""
