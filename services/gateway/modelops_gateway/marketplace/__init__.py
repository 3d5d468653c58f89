"""Marketplace routes: listings, compatibility, ratings, downloads relayed to the marketplace; installs deployed."""
