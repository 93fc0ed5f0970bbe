//! berth-network: bridge networks, container endpoints, IPAM, NAT/published ports and service DNS.
