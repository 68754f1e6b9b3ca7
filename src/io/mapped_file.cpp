// MappedFile: POSIX mmap of a whole file, read-only and private. The mapping stays valid
// after the descriptor is closed, so nothing but the address range is held. Errors name
// the path and the reason from errno, e.g. "model.gguf: No such file or directory".
#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace hearth {
namespace {

[[noreturn]] void fail_errno(const std::string& path, const char* what) {
  const int err = errno;
  fail(path + ": " + what + std::strerror(err));
}

// Closes the descriptor on every path out of open().
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) fail_errno(path, "");
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail_errno(path, "cannot stat: ");
  if (S_ISDIR(st.st_mode)) fail(path + ": is a directory, not a file");
  if (!S_ISREG(st.st_mode)) fail(path + ": not a regular file");

  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ == 0) return file;  // mmap of length 0 is invalid; an empty mapping is not

  void* addr = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (addr == MAP_FAILED) fail_errno(path, "cannot map: ");
  file->data_ = static_cast<const uint8_t*>(addr);
  file->mapped_ = true;
  return file;
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(std::string name, std::vector<uint8_t> bytes) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = std::move(name);
  file->owned_ = std::move(bytes);
  file->size_ = file->owned_.size();
  file->data_ = file->owned_.empty() ? nullptr : file->owned_.data();
  return file;
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace hearth
