#include "auth/token_authenticator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "auth/token_set.h"
#include "tests/auth/log_capture.h"
#include "tests/support/test_certificates.h"

namespace seqserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::seqserve::testing::LogCapture;
using ::seqserve::testing::ReplaceFile;

CallerCredentials WithToken(const std::string& token) {
  CallerCredentials caller;
  caller.peer = "ipv4:127.0.0.1:1";
  caller.bearer_token = token;
  return caller;
}

std::string TempFile(const std::string& name) { return ::testing::TempDir() + "/" + name; }


TEST(TokenSet, ReadsTokensNamesCommentsAndBlankLines) {
  auto set = TokenSet::Parse("# who may call\n\nalice: a-secret \n  plain-token\r\n# end\n");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->size(), 2u);
  std::string name = "unset";
  EXPECT_TRUE(set->Find("a-secret", &name));
  EXPECT_EQ(name, "alice");
  EXPECT_TRUE(set->Find("plain-token", &name));
  EXPECT_EQ(name, "");
  EXPECT_FALSE(set->Find("a-secre", &name));
  EXPECT_FALSE(set->Find("a-secret ", &name));
  EXPECT_FALSE(set->Find("", &name));
  EXPECT_FALSE(set->Find("# who may call", &name));
}

TEST(TokenSet, RefusesBadLinesByNumberWithoutTheirText) {
  auto empty_token = TokenSet::Parse("good-one\nbob:\n");
  EXPECT_EQ(empty_token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty_token.status().message()), HasSubstr("line 2 has no token"));
  auto spaced = TokenSet::Parse("carol: two words-secret\n");
  EXPECT_EQ(spaced.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spaced.status().message()), HasSubstr("line 1"));
  EXPECT_THAT(std::string(spaced.status().message()), Not(HasSubstr("words-secret")));
}

TEST(TokenSet, AFileWithoutATokenIsAnEmptySetThatAcceptsNothing) {
  for (const char* text : {"", "\n\n", "# only a comment\n  # another\n\n"}) {
    auto set = TokenSet::Parse(text);
    ASSERT_TRUE(set.ok()) << "'" << text << "': " << set.status();
    EXPECT_EQ(set->size(), 0u);
    std::string name;
    EXPECT_FALSE(set->Find("", &name));
    EXPECT_FALSE(set->Find("# only a comment", &name));
  }
}

TEST(TokenSet, DigestsAreSha256) {
  // sha256("abc"), FIPS 180-2's example.
  const TokenDigest digest = DigestToken("abc");
  EXPECT_EQ(digest[0], 0xba);
  EXPECT_EQ(digest[1], 0x78);
  EXPECT_EQ(digest[31], 0xad);
}

TEST(TokenAuthenticator, AdmitsOnlyListedTokensAndNamesTheCaller) {
  const std::string path = TempFile("tokens-admit.txt");
  ReplaceFile(path, "alice:alice-token-1\nbob-token-2\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  std::string name;
  EXPECT_TRUE((*authenticator)->Identify(WithToken("alice-token-1"), &name).ok());
  EXPECT_EQ(name, "alice");
  EXPECT_TRUE((*authenticator)->Check(WithToken("bob-token-2")).ok());

  const absl::Status missing = (*authenticator)->Check(WithToken(""));
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("requires a bearer token"));
  const absl::Status wrong = (*authenticator)->Check(WithToken("alice-token-2"));
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(wrong.message()), HasSubstr("not accepted"));
  EXPECT_THAT(std::string(wrong.message()), Not(HasSubstr("alice-token")));
}

TEST(TokenAuthenticator, ARevokedTokenStopsWorkingWithoutARestart) {
  const std::string path = TempFile("tokens-revoke.txt");
  ReplaceFile(path, "alice:alice-token\nbob:bob-token\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  EXPECT_TRUE((*authenticator)->Check(WithToken("bob-token")).ok());
  EXPECT_FALSE((*authenticator)->Refresh());  // nothing changed

  ReplaceFile(path, "alice:alice-token\n");
  EXPECT_TRUE((*authenticator)->Refresh());
  EXPECT_EQ((*authenticator)->Check(WithToken("bob-token")).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE((*authenticator)->Check(WithToken("alice-token")).ok());
  EXPECT_EQ((*authenticator)->token_count(), 1u);
}

TEST(TokenAuthenticator, ABrokenOrMissingReplacementKeepsTheTokensInForce) {
  const std::string path = TempFile("tokens-broken.txt");
  ReplaceFile(path, "alice:alice-token\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();

  ReplaceFile(path, "alice:alice-token\nbob: two words\n");
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_TRUE((*authenticator)->Check(WithToken("alice-token")).ok());
  ASSERT_EQ(std::remove(path.c_str()), 0);
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_TRUE((*authenticator)->Check(WithToken("alice-token")).ok());
  // A good file again takes effect.
  ReplaceFile(path, "carol:carol-token\n");
  EXPECT_TRUE((*authenticator)->Refresh());
  EXPECT_TRUE((*authenticator)->Check(WithToken("carol-token")).ok());
  EXPECT_FALSE((*authenticator)->Check(WithToken("alice-token")).ok());
}

TEST(TokenAuthenticator, TheWatcherPicksUpAnEditWithinItsInterval) {
  const std::string path = TempFile("tokens-watch.txt");
  ReplaceFile(path, "old-token\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::Milliseconds(50)});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  ReplaceFile(path, "new-token\n");
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (!(*authenticator)->Check(WithToken("new-token")).ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE((*authenticator)->Check(WithToken("new-token")).ok());
  EXPECT_FALSE((*authenticator)->Check(WithToken("old-token")).ok());
}

TEST(TokenAuthenticator, AFileThatCannotBeUsedFailsTheStartNamingIt) {
  auto missing = TokenAuthenticator::Start({TempFile("no-such-tokens.txt"), absl::ZeroDuration()});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("no-such-tokens.txt"));
  const std::string bad = TempFile("tokens-bad-line.txt");
  ReplaceFile(bad, "alice:alice-token\n\ncarol: spaced secret-text\n");
  auto broken = TokenAuthenticator::Start({bad, absl::ZeroDuration()});
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(broken.status().message()), HasSubstr("tokens-bad-line.txt: line 3"));
  EXPECT_THAT(std::string(broken.status().message()), Not(HasSubstr("secret-text")));
}

TEST(TokenAuthenticator, AFileWithoutATokenStartsRefusingEveryTokenWithAWarning) {
  const std::string empty = TempFile("tokens-empty.txt");
  ReplaceFile(empty, "\n# nobody\n");
  LogCapture log;
  auto none = TokenAuthenticator::Start({empty, absl::ZeroDuration()});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ((*none)->token_count(), 0u);
  EXPECT_TRUE((*none)->file_valid());
  EXPECT_EQ((*none)->Check(WithToken("anything")).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*none)->Check(WithToken("# nobody")).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ((*none)->Check(WithToken("")).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(log.Lines("warning tokens file " + empty + " holds no token"),
              ::testing::SizeIs(1));
  // A token added back works without a restart.
  ReplaceFile(empty, "alice:alice-token\n");
  EXPECT_TRUE((*none)->Refresh());
  EXPECT_TRUE((*none)->Check(WithToken("alice-token")).ok());
}

TEST(TokenAuthenticator, OneTokenIsCountedInTheSingular) {
  const std::string path = TempFile("tokens-one.txt");
  ReplaceFile(path, "alice:alice-token\n");
  LogCapture log;
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  EXPECT_THAT(log.Lines("info tokens file " + path + " holds 1 token"), ::testing::SizeIs(1));
  ReplaceFile(path, "alice:alice-token\nbob:bob-token\n");
  EXPECT_TRUE((*authenticator)->Refresh());
  EXPECT_THAT(log.Lines("info tokens file " + path + " changed and holds 2 tokens"),
              ::testing::SizeIs(1));
  ReplaceFile(path, "bob:bob-token\n");
  EXPECT_TRUE((*authenticator)->Refresh());
  ReplaceFile(path, "bob: b o b\n");
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_THAT(log.Lines("; the 1 token in force stays"), ::testing::SizeIs(1));
  EXPECT_THAT(log.text(), Not(HasSubstr("1 tokens")));
}

TEST(TokenAuthenticator, EmptyingTheFileRevokesEveryToken) {
  const std::string path = TempFile("tokens-emptied.txt");
  ReplaceFile(path, "alice:alice-token\nbob:bob-token\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  EXPECT_TRUE((*authenticator)->Check(WithToken("alice-token")).ok());

  for (const char* emptied : {"# everyone revoked\n", ""}) {
    LogCapture log;
    ReplaceFile(path, emptied);
    EXPECT_TRUE((*authenticator)->Refresh()) << "'" << emptied << "'";
    EXPECT_EQ((*authenticator)->token_count(), 0u);
    EXPECT_TRUE((*authenticator)->file_valid());
    EXPECT_EQ((*authenticator)->reload_failures(), 0u);
    for (const char* token : {"alice-token", "bob-token", "# everyone revoked"}) {
      EXPECT_EQ((*authenticator)->Check(WithToken(token)).code(),
                absl::StatusCode::kUnauthenticated);
    }
    EXPECT_THAT(log.Lines("warning tokens file " + path +
                          " changed and holds no token: every call that needs a token is refused"),
                ::testing::SizeIs(1));
  }
  ReplaceFile(path, "bob:bob-token\n");
  EXPECT_TRUE((*authenticator)->Refresh());
  EXPECT_TRUE((*authenticator)->Check(WithToken("bob-token")).ok());
  EXPECT_FALSE((*authenticator)->Check(WithToken("alice-token")).ok());
}

TEST(TokenAuthenticator, ARefusedChangeIsLoggedAndCountedOnceAndMarksTheFileInvalid) {
  const std::string path = TempFile("tokens-refused.txt");
  ReplaceFile(path, "alice:alice-token\n");
  auto authenticator = TokenAuthenticator::Start({path, absl::ZeroDuration()});
  ASSERT_TRUE(authenticator.ok()) << authenticator.status();
  EXPECT_TRUE((*authenticator)->file_valid());
  EXPECT_EQ((*authenticator)->reload_failures(), 0u);

  LogCapture log;
  ReplaceFile(path, "alice:alice-token\nbob:\n# fine\ncarol: leaked secret-words\n");
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_FALSE((*authenticator)->Refresh());  // the same file: no second log
  EXPECT_FALSE((*authenticator)->file_valid());
  EXPECT_EQ((*authenticator)->reload_failures(), 1u);
  EXPECT_TRUE((*authenticator)->Check(WithToken("alice-token")).ok());
  const std::vector<std::string> errors = log.Lines("error tokens file " + path);
  ASSERT_THAT(errors, ::testing::SizeIs(1));
  EXPECT_THAT(errors[0], HasSubstr("line 2"));
  EXPECT_THAT(log.text(), Not(HasSubstr("secret-words")));
  EXPECT_THAT(log.text(), Not(HasSubstr("alice-token")));

  // Another refused change counts again; a missing file is one too.
  ReplaceFile(path, "dave: x y\n");
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_EQ((*authenticator)->reload_failures(), 2u);
  ASSERT_EQ(std::remove(path.c_str()), 0);
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_FALSE((*authenticator)->Refresh());
  EXPECT_EQ((*authenticator)->reload_failures(), 3u);
  EXPECT_FALSE((*authenticator)->file_valid());
  EXPECT_THAT(log.Lines("error cannot read tokens file " + path), ::testing::SizeIs(1));

  // A good file again: in force, and valid.
  ReplaceFile(path, "erin:erin-token\n");
  EXPECT_TRUE((*authenticator)->Refresh());
  EXPECT_TRUE((*authenticator)->file_valid());
  EXPECT_EQ((*authenticator)->reload_failures(), 3u);
  EXPECT_TRUE((*authenticator)->Check(WithToken("erin-token")).ok());
}

}  // namespace
}  // namespace seqserve
