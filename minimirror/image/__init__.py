"""The OCI image that serves a published tree: layers, the image layout, the server layer, base images, registries,
engines and the SBOM. Imports ``publish`` and below."""
