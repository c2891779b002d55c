"""The Dockerfile builder (docker build, legacy API): parser, context, steps, cache."""
