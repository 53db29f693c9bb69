# version.cmake — writes OUT, the C file that defines kiln_version: VERSION and, in a git
# checkout, the commit the build is of (`git describe --always --dirty`). Run at every build
# (CMakeLists.txt's kiln_version target), not once at configure time: a version taken then
# named the commit of the first configure after later commits were built, and `kiln
# --version` and the report's setup (what a paper cites) said the wrong one. OUT is
# rewritten only when its text changes, so an unchanged version compiles nothing.
execute_process(COMMAND git -C ${SRC} describe --always --dirty OUTPUT_VARIABLE git_commit
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(git_commit)
  set(VERSION "${VERSION}+${git_commit}")
endif()
set(text "/* written by scripts/version.cmake at build time */\nconst char kiln_version[] = \"${VERSION}\";\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${text}")
  file(WRITE ${OUT} "${text}")
endif()
