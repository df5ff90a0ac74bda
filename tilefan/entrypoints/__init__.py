"""The doors, one folder each: ``cli`` (the ``tilefan`` command), ``http`` (REST, the web page,
``tilefan serve``), ``sdk`` (the Python API and Client), and ``report`` (what they show a person)."""
