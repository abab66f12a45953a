"""Daemonless, reproducible OCI images: build (layers, image) kept apart from publish (registry, publish).

Stdlib only, Python >= 3.9: this package runs inside Pants' own process.
"""
from flytebuild.oci.image import BaseImage, Image, build_image, canonical_json
from flytebuild.oci.layers import Layer, build_layer
from flytebuild.oci.publish import PublishResult, publish, write_oci_layout
from flytebuild.oci.registry import Reference, RegistryClient, RegistryError

__all__ = [
    "BaseImage", "Image", "Layer", "PublishResult", "Reference", "RegistryClient", "RegistryError",
    "build_image", "build_layer", "canonical_json", "publish", "write_oci_layout",
]
