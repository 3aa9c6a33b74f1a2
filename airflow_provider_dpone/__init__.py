"""Apache Airflow provider for staged, state-safe data movement driven by YAML manifests.

Importing this package stays light: no database driver, no Airflow module.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
