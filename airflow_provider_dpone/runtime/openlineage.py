"""Turn the run report's lineage into OpenLineage datasets for Airflow's OpenLineage provider.

Imported only when that provider asks an operator for its facets, so the package and DAG
parsing never need ``openlineage``. Install it with ``pip install 'airflow-provider-dpone[openlineage]'``.
"""

from __future__ import annotations

from typing import Any


def operator_lineage(lineage: dict[str, Any]) -> Any:
    """An ``OperatorLineage`` with schema, output statistics and quality assertion facets."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset,
        output_statistics_output_dataset,
        schema_dataset,
    )

    def schema_facet(dataset: dict[str, Any]) -> dict[str, Any]:
        fields = [
            schema_dataset.SchemaDatasetFacetFields(name=f["name"], type=f["type"])
            for f in dataset.get("schema", [])
        ]
        return {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)} if fields else {}

    inputs = [
        InputDataset(namespace=d["namespace"], name=d["name"], facets=schema_facet(d))
        for d in lineage.get("inputs", [])
    ]
    outputs = []
    for d in lineage.get("outputs", []):
        facets = schema_facet(d)
        if d.get("quality"):
            facets["dataQualityAssertions"] = (
                data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=[
                        data_quality_assertions_dataset.Assertion(
                            assertion=q["check"], success=q["passed"], name=q["name"], severity=q["severity"]
                        )
                        for q in d["quality"]
                    ]
                )
            )
        output_facets: dict[str, Any] = {}
        if d.get("rows") is not None:
            output_facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=d["rows"], size=d.get("bytes")
                )
            )
        outputs.append(
            OutputDataset(namespace=d["namespace"], name=d["name"], facets=facets, outputFacets=output_facets)
        )
    return OperatorLineage(inputs=inputs, outputs=outputs)
