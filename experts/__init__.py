"""Expert modules: the implementations behind the tool catalogue."""
