#include "sidecar/proxy/http1_reader.h"

#include <cstring>

#include "sidecar/proxy/header_stock.h"

namespace mulligan::proxy {

namespace {
Http1Reader* self(llhttp_t* p) { return static_cast<Http1Reader*>(p->data); }

// rawHeadBytes' answer, for the head being delivered on this thread.
thread_local const MessageHead* t_raw_head = nullptr;
thread_local std::string_view t_raw_bytes;

// Sets rawHeadBytes' answer for one onHead call (nested readers restore it).
class RawHeadScope {
 public:
  RawHeadScope(const MessageHead* head, std::string_view bytes) : head_(t_raw_head), bytes_(t_raw_bytes) {
    t_raw_head = head;
    t_raw_bytes = bytes;
  }
  ~RawHeadScope() {
    t_raw_head = head_;
    t_raw_bytes = bytes_;
  }
  RawHeadScope(const RawHeadScope&) = delete;
  RawHeadScope& operator=(const RawHeadScope&) = delete;

 private:
  const MessageHead* head_;
  std::string_view bytes_;
};
}  // namespace

std::string_view rawHeadBytes(const MessageHead& head) {
  return &head == t_raw_head ? t_raw_bytes : std::string_view();
}

Http1Reader::Http1Reader(Mode mode, Handler* handler, Limits limits)
    : mode_(mode), handler_(handler), limits_(limits) {
  // One set of callbacks for every reader (llhttp keeps a pointer to it): a
  // reader is made per upstream attempt, so not filled in each time.
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_message_begin = &Http1Reader::onMessageBegin;
    st.on_url = &Http1Reader::onUrl;
    st.on_status = &Http1Reader::onStatus;
    st.on_header_field = &Http1Reader::onHeaderField;
    st.on_header_value = &Http1Reader::onHeaderValue;
    st.on_header_value_complete = &Http1Reader::onHeaderValueComplete;
    st.on_headers_complete = &Http1Reader::onHeadersComplete;
    st.on_body = &Http1Reader::onBody;
    st.on_message_complete = &Http1Reader::onMessageComplete;
    return st;
  }();
  llhttp_init(&parser_, mode == Mode::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
  parser_.data = this;
}

void Http1Reader::expectResponseTo(std::string_view method) { head_request_ = method == "HEAD"; }

int Http1Reader::headerBytesTooMany() {
  user_error_ = Error::kHeadersTooLarge;
  user_why_ = "header section larger than " + std::to_string(limits_.max_header_bytes) + " bytes";
  return -1;
}

Http1Reader::~Http1Reader() {
  HeaderStock& stock = HeaderStock::local();
  stock.give(std::move(head_.headers));
  stock.give(std::move(trailers_));
  stock.giveString(std::move(head_.target));
  stock.giveString(std::move(head_.reason));
}

int Http1Reader::onMessageBegin(llhttp_t* p) {
  Http1Reader* r = self(p);
  // A fresh head, field by field (every field of MessageHead): building a
  // whole MessageHead to move-assign costs more. What the last message left
  // is emptied and keeps its storage; what its owner moved out (a request's
  // fields and target go to the RequestHead) starts from the thread's stock:
  // no malloc per message once warm (STYLE.md "Hot path").
  MessageHead& h = r->head_;
  if (h.headers.capacity() != 0) {
    h.headers.clear();
  } else {
    h.headers = HeaderStock::local().takeList();
  }
  r->trailers_.clear();
  h.method.clear();
  h.target.clear();
  h.reason.clear();
  h.status = 0;
  h.version_minor = 1;
  h.keep_alive = true;
  h.chunked = h.has_content_length = h.upgrade = h.needs_eof = false;
  h.content_length = 0;
  r->in_headers_ = true;
  r->in_message_ = true;
  r->last_was_value_ = false;
  r->value_complete_ = false;
  r->header_bytes_ = 0;
  return 0;
}

int Http1Reader::onUrl(llhttp_t* p, const char* at, size_t len) {
  HeaderStock::append(self(p)->head_.target, at, len);
  return self(p)->addHeaderBytes(len);
}

int Http1Reader::onStatus(llhttp_t* p, const char* at, size_t len) {
  HeaderStock::append(self(p)->head_.reason, at, len);
  return self(p)->addHeaderBytes(len);
}

int Http1Reader::onHeaderField(llhttp_t* p, const char* at, size_t len) {
  Http1Reader* r = self(p);
  HeaderList& list = r->in_headers_ ? r->head_.headers : r->trailers_;
  // llhttp may split a name or value across calls; a new pair starts when a
  // name follows a value.
  if (list.empty() || r->last_was_value_) {
    if (list.size() >= r->limits_.max_headers) {
      r->user_error_ = Error::kHeadersTooLarge;
      r->user_why_ = "more than " + std::to_string(r->limits_.max_headers) + " header fields";
      return -1;
    }
    list.startField();
  }
  // RFC 9110 §5.1: a field name is a token. llhttp refuses every other byte
  // but the space (http1_reader_test proves it, byte by byte, on the llhttp
  // we build with), so the space is all that is left to look for — in a
  // trailer section too: a trailer is forwarded like a header, and a name
  // with a space in it is one a lenient peer may read differently.
  if (std::string_view(at, len).find(' ') != std::string_view::npos) {
    r->user_error_ = Error::kBadMessage;
    r->user_why_ = std::string(r->in_headers_ ? "invalid header name \"" : "invalid trailer name \"") +
                   std::string(list.back().first) + std::string(at, len) + "\"";
    return -1;
  }
  list.appendToName(std::string_view(at, len));
  r->last_was_value_ = false;
  r->value_complete_ = false;
  return r->addHeaderBytes(len);
}

int Http1Reader::onHeaderValue(llhttp_t* p, const char* at, size_t len) {
  Http1Reader* r = self(p);
  HeaderList& list = r->in_headers_ ? r->head_.headers : r->trailers_;
  if (list.empty()) return -1;
  // llhttp joins an obs-fold line to the previous value (no value_complete
  // in between), so look at the bytes before this piece: a line break right
  // before it (or before its leading blank) is a fold.
  bool folded = false;
  if (!list.back().second.empty()) {
    const char* q = at;
    while (q > r->feed_begin_ && (q[-1] == ' ' || q[-1] == '\t')) --q;
    char before = q > r->feed_begin_ ? q[-1] : r->prev_nonblank_;
    folded = before == '\n';
  }
  if (r->value_complete_ || folded) {
    // llhttp accepts obs-fold as a continuation of the previous value; a
    // proxy must not (RFC 9112 §5.2): reject with 400.
    r->user_error_ = Error::kBadMessage;
    r->user_why_ = "obsolete line folding in header \"" + std::string(list.back().first) + "\"";
    return -1;
  }
  list.appendToValue(std::string_view(at, len));
  r->last_was_value_ = true;
  r->last_value_end_ = at + len;
  return r->addHeaderBytes(len);
}

int Http1Reader::onHeaderValueComplete(llhttp_t* p) {
  self(p)->value_complete_ = true;
  return 0;
}

int Http1Reader::onHeadersComplete(llhttp_t* p) {
  Http1Reader* r = self(p);
  MessageHead& h = r->head_;
  h.version_minor = p->http_minor;
  if (p->http_major != 1) {
    r->user_error_ = Error::kBadMessage;
    r->user_why_ = "unsupported HTTP version";
    return -1;
  }
  if (r->mode_ == Mode::kRequest) {
    h.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  } else {
    h.status = p->status_code;
  }
  // llhttp itself refuses Content-Length + Transfer-Encoding, duplicate
  // differing Content-Length and a non-final chunked, and never lets CR or
  // LF into a value (http1_reader_test checks that on the llhttp we build
  // with). Obs-fold, which llhttp accepts as a value continuation, was
  // refused in onHeaderValue; names were checked byte by byte as they came
  // (onHeaderField). An empty name is not a token either.
  for (const auto& field : h.headers) {
    if (field.first.empty()) {
      r->user_error_ = Error::kBadMessage;
      r->user_why_ = "empty header name";
      return -1;
    }
  }
  h.chunked = (p->flags & F_CHUNKED) != 0;
  h.has_content_length = (p->flags & F_CONTENT_LENGTH) != 0;
  h.content_length = h.has_content_length ? p->content_length : 0;
  h.keep_alive = llhttp_should_keep_alive(p) != 0;
  h.upgrade = p->upgrade != 0;
  h.needs_eof = r->mode_ == Mode::kResponse && llhttp_message_needs_eof(p) != 0;
  r->in_headers_ = false;
  // A response head that arrived whole in this feed: its bytes, from the
  // status line to the blank line after the last field (OWS after the last
  // value allowed), for rawHeadBytes during the handler's onHead.
  std::string_view raw;
  if (r->mode_ == Mode::kResponse && r->msg_start_ != nullptr && r->last_value_end_ != nullptr &&
      r->last_value_end_ > r->msg_start_ && r->last_value_end_ <= r->feed_end_) {
    const char* q = r->last_value_end_;
    while (q < r->feed_end_ && (*q == ' ' || *q == '\t')) ++q;
    if (r->feed_end_ - q >= 4 && std::memcmp(q, "\r\n\r\n", 4) == 0) {
      raw = std::string_view(r->msg_start_, static_cast<size_t>(q + 4 - r->msg_start_));
    }
  }
  {
    RawHeadScope scope(&h, raw);
    r->handler_->onHead(h);
  }
  if (r->mode_ == Mode::kResponse) {
    // 1 = no body: a response to HEAD, and 1xx/204/304 whatever their
    // Content-Length says (RFC 9112 §6.3, rule 1).
    if (r->head_request_ || h.status == 204 || h.status == 304 || (h.status >= 100 && h.status < 200 && h.status != 101)) {
      return 1;
    }
  }
  if (h.upgrade) return 2;  // a tunnel follows: stop parsing
  return 0;
}

int Http1Reader::onBody(llhttp_t* p, const char* at, size_t len) {
  self(p)->handler_->onBody(at, len);
  return 0;
}

int Http1Reader::onMessageComplete(llhttp_t* p) {
  Http1Reader* r = self(p);
  // 1xx interim responses (100 Continue) are complete messages of their own;
  // the final response follows on the same parse.
  if (!r->trailers_.empty()) r->handler_->onTrailers(r->trailers_);
  r->in_message_ = false;
  r->msg_start_ = nullptr;  // a next message in the same feed did not start there
  r->handler_->onComplete();
  if (r->mode_ == Mode::kResponse && r->head_.status >= 100 && r->head_.status < 200 && r->head_.status != 101) {
    return 0;
  }
  return HPE_PAUSED;
}

Http1Reader::Result Http1Reader::feed(const char* data, size_t len) {
  Result res;
  feed_begin_ = data;
  feed_end_ = data + len;
  // A message that starts in this feed starts here (the reader pauses after
  // each message, so the next one is fed from its first byte).
  msg_start_ = in_message_ ? nullptr : data;
  last_value_end_ = nullptr;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  for (size_t i = len; i > 0; --i) {
    if (data[i - 1] != ' ' && data[i - 1] != '\t') {
      prev_nonblank_ = data[i - 1];
      break;
    }
  }
  if (err == HPE_OK) {
    res.consumed = len;
    return res;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    const char* pos = llhttp_get_error_pos(&parser_);
    res.consumed = pos ? static_cast<size_t>(pos - data) : len;
    res.paused = true;
    return res;
  }
  res.consumed = len;
  if (user_error_ != Error::kNone) {
    res.error = user_error_;
    res.why = user_why_;
  } else {
    res.error = Error::kBadMessage;
    res.why = llhttp_get_error_reason(&parser_) ? llhttp_get_error_reason(&parser_) : llhttp_errno_name(err);
  }
  return res;
}

void Http1Reader::resume() {
  if (llhttp_get_errno(&parser_) == HPE_PAUSED) llhttp_resume(&parser_);
  if (llhttp_get_errno(&parser_) == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(&parser_);
}

bool Http1Reader::finishOnEof() {
  if (!in_message_) return true;
  // on_message_complete pauses, so llhttp_finish reports HPE_PAUSED for a
  // body that did end; what counts is whether the message completed.
  llhttp_finish(&parser_);
  return !in_message_;
}

}  // namespace mulligan::proxy
