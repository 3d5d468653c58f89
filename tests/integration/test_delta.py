"""Datasets as Delta tables, read back at an exact version: run once against a local store and once against S3."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from modelops_shared.settings import Settings
from modelops_shared.storage import InvalidKey
from modelops_shared.storage.delta import DatasetNotFound, dataset_table_uri, delta_storage_options, read_dataset


async def test_each_version_reads_back_exactly_as_it_was_committed(store_settings: Settings):
    uri = dataset_table_uri(store_settings, "qa")
    assert uri == f"{store_settings.store_url}/datasets/qa"
    options = delta_storage_options(store_settings)
    first = pa.Table.from_pylist([{"prompt": "1+1?", "completion": "2"}])
    await asyncio.to_thread(write_deltalake, uri, first, storage_options=options)
    second = pa.Table.from_pylist([{"prompt": "2+2?", "completion": "4"}])
    await asyncio.to_thread(write_deltalake, uri, second, mode="append", storage_options=options)

    assert read_dataset(store_settings, "qa", 0).to_pylist() == [{"prompt": "1+1?", "completion": "2"}]
    assert sorted(r["completion"] for r in read_dataset(store_settings, "qa", 1).to_pylist()) == ["2", "4"]
    with pytest.raises(DatasetNotFound, match="has no version 2"):
        read_dataset(store_settings, "qa", 2)
    with pytest.raises(DatasetNotFound, match="'missing' has no version 0"):
        read_dataset(store_settings, "missing", 0)


def test_a_dataset_name_is_one_plain_path_segment():
    settings = Settings(object_store_url="file:///srv/objects")
    for name in ("a/b", "..", ""):
        with pytest.raises(InvalidKey):
            dataset_table_uri(settings, name)


def test_s3_options_carry_the_endpoint_and_credentials_and_local_stores_need_none():
    s3 = Settings(object_store_url="s3://b/p", s3_endpoint="minio:9000", s3_access_key="k", s3_secret_key="s")
    assert delta_storage_options(s3) == {
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    assert delta_storage_options(Settings(object_store_url="file:///srv/objects")) == {}
