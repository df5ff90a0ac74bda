"""The HTTP doors: the REST routes and their guard, the web page, OpenAPI, and the
waitress front end of ``tilefan serve``."""
