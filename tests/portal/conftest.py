"""Fixtures of the portal tests: a published world in a temp folder (world.py), built once
per session and copied for each test; argon2 with cheap parameters (the production
parameters are checked in test_portal_cli.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from orchestration.portal import auth
from tests.portal.world import World, build_world, open_world, sign_in

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def fast_argon2() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "_hasher", FAST_HASHER)
        mp.setattr(auth, "_dummy_hash", None)
        yield


@pytest.fixture(scope="session")
def world_template(tmp_path_factory: pytest.TempPathFactory, fast_argon2: None) -> Path:
    return build_world(tmp_path_factory.mktemp("portal-template")).root


@pytest.fixture
def world(world_template: Path, tmp_path: Path) -> World:
    """Two published days, a warehouse, a model and three users (a fresh copy per test)."""
    root = tmp_path / "world"
    shutil.copytree(world_template, root, symlinks=True)
    return open_world(root)


@pytest.fixture
def as_user(world: World) -> Callable[[str], TestClient]:
    """A signed-in client for a fixture user."""

    def login(name: str) -> TestClient:
        client = world.make_client()
        response = sign_in(client, name)
        assert response.status_code == 303, response.text
        return client

    return login
