"""The address intake's per-client limit counts: the peer, or what a configured proxy forwards."""

from __future__ import annotations

from services.intake.domain import client_address, trusted_networks

PROXIES = trusted_networks(["10.0.0.0/8", "192.0.2.7"])


def test_a_client_that_sets_the_header_itself_is_counted_by_its_own_address() -> None:
    assert client_address("203.0.113.5", "198.51.100.1", PROXIES) == "203.0.113.5"
    assert client_address("203.0.113.5", None, PROXIES) == "203.0.113.5"


def test_a_configured_proxy_names_the_client() -> None:
    assert client_address("10.1.2.3", "198.51.100.1", PROXIES) == "198.51.100.1"


def test_hops_of_configured_proxies_are_skipped_and_a_forged_start_is_ignored() -> None:
    # The client wrote "1.2.3.4" itself; the first proxy appended the real address.
    forwarded = "1.2.3.4, 198.51.100.1, 192.0.2.7"
    assert client_address("10.1.2.3", forwarded, PROXIES) == "198.51.100.1"


def test_garbage_from_the_far_side_counts_on_the_proxy() -> None:
    assert client_address("10.1.2.3", "not-an-address", PROXIES) == "10.1.2.3"


def test_no_proxies_configured_means_the_header_is_never_believed() -> None:
    assert client_address("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"
