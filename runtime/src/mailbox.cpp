// The mailbox: posts and deferred continuations. See mailbox.hpp for the design and invariants.
#include "mailbox.hpp"

#include "core.hpp"
#include "drive.hpp"

namespace uvrt::detail {

bool mailbox::post(posted* p) {
  std::lock_guard lock(mutex_);
  if (!accepting_) return false;
  p->next = nullptr;
  if (tail_) tail_->next = p;
  else head_ = p;
  tail_ = p;
  uv_async_send(&wakeup);
  return true;
}

void mailbox::on_wakeup(uv_async_t* handle) {
  core& c = *static_cast<core*>(handle->data);
  callback_scope scope(c);
  c.mail_.serve_posts();
  c.mail_.resume_deferred();
  c.progress();
}

void mailbox::serve_posts() noexcept {
  posted* p;
  {
    std::lock_guard lock(mutex_);
    p = std::exchange(head_, nullptr);
    tail_ = nullptr;
  }
  while (p) {
    posted* next = p->next;
    p->run(p, &core_);
    p = next;
  }
}

void mailbox::close() noexcept {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
  }
  callback_scope scope(core_);
  serve_posts();
}

void mailbox::make_room_to_defer(std::size_t more) {
  if (deferred_.capacity() - deferred_.size() >= more) return;
  deferred_.reserve(deferred_.size() + (more > deferred_.size() + 8 ? more : deferred_.size() + 8));
}

void mailbox::defer(job_core* j) noexcept {
  j->refs.fetch_add(1, std::memory_order_relaxed);
  deferred_.push_back(j);
  if (deferred_.size() == 1) uv_ref(reinterpret_cast<uv_handle_t*>(&wakeup));
  uv_async_send(&wakeup);
}

void mailbox::resume_deferred() noexcept {
  while (!deferred_.empty()) {
    auto batch = std::exchange(deferred_, {});
    for (job_core* j : batch) {
      if (continuation* k = std::exchange(j->cont, nullptr)) k->resume(k);
      j->vt->release(j);
    }
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(&wakeup));
}

}  // namespace uvrt::detail
