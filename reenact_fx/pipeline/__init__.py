"""The effect pipeline: component registry, analysis, the track cache, the Effect (analyse once,
render any frame) and progress reporting."""
