"""Where jobs run: one package per runtime, each driving the pipeline's steps."""
