{
  "targets": [
    {
      "target_name": "natd_native",
      "sources": ["natd_native.c", "udp_batch.c", "udp_client.c", "peer_cred.c", "arp_probe.c", "socket_drops.c", "icmp6_socket.c", "udp6_socket.c", "journal_writer.c", "send_all.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
