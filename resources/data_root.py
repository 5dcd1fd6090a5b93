"""The data root as a Dagster resource."""


import dagster as dg
from pydantic import Field

from aesthetic_platform.paths import DataRoot


class DataRootResource(dg.ConfigurableResource):
    """Where tables, images, caches and models live (``AESTHETIC_HOME``)."""

    home: str = Field(default="", description="Data root folder; empty means $AESTHETIC_HOME, else ./.aesthetic.")

    def root(self) -> DataRoot:
        return DataRoot.from_env(self.home or None).ensure()
