"""pytest plugin: fixtures wiring a Router to the loopback Vertex stub."""
