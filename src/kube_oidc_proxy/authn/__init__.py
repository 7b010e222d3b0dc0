"""Who is calling: bearer token -> verified identity. Pure decisions plus one async key source."""
