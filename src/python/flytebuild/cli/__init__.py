"""`flytebuild`: the Pants goals' features without a build system, driven by flytebuild.toml."""
