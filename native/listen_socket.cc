#include "listen_socket.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <system_error>

namespace speech {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};

// The port `fd` listens on, or -1 when it is not a listening IPv4/IPv6 socket.
int ListeningPort(int fd) {
  int listening = 0;
  socklen_t len = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || listening == 0) return -1;
  sockaddr_storage address{};
  len = sizeof address;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &len) != 0) return -1;
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  return -1;
}

}  // namespace

int SetListenReceiveBuffer(int port, int bytes) {
  const std::unique_ptr<DIR, DirCloser> dir(opendir("/proc/self/fd"));
  if (!dir) throw std::system_error(errno, std::generic_category(), "cannot list /proc/self/fd");
  const int own = dirfd(dir.get());
  int set = 0;
  while (const dirent* entry = readdir(dir.get())) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == own) continue;
    if (ListeningPort(static_cast<int>(fd)) != port) continue;
    if (setsockopt(static_cast<int>(fd), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0) {
      throw std::system_error(errno, std::generic_category(), "setsockopt(SO_RCVBUF)");
    }
    ++set;
  }
  return set;
}

}  // namespace speech
