// The receive buffer of the server's listening sockets, which accepted connections inherit.
#pragma once

namespace speech {

// Sets SO_RCVBUF to `bytes` on every listening TCP socket of this process bound to `port` (one
// per worker thread under SO_REUSEPORT) and returns how many it set. uWebSockets.js exposes no
// file descriptors, so the process's descriptors are searched. Throws std::system_error when a
// descriptor cannot be read or set.
int SetListenReceiveBuffer(int port, int bytes);

}  // namespace speech
