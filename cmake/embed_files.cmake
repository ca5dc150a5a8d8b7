# Writes a C++ source that holds files as string constants, so the server
# serves them from its binary (the console works offline, from one file).
#   cmake -DOUTPUT=out.cc -DINPUTS="a.html|b.js" -DHEADER=path/of/header.h -P embed_files.cmake
string(REPLACE "|" ";" INPUTS "${INPUTS}")
set(source "// Generated at build time by cmake/embed_files.cmake: do not edit.\n")
string(APPEND source "#include \"${HEADER}\"\n\nnamespace seqserve {\n\n")
string(APPEND source "absl::Span<const EmbeddedFile> ConsoleFiles() {\n")
string(APPEND source "  static const EmbeddedFile files[] = {\n")
foreach(input IN LISTS INPUTS)
  get_filename_component(name "${input}" NAME)
  file(READ "${input}" hex HEX)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" escaped "${hex}")
  string(APPEND source "      {\"${name}\", absl::string_view(\"${escaped}\", ${size})},\n")
endforeach()
string(APPEND source "  };\n  return files;\n}\n\n}  // namespace seqserve\n")
file(WRITE "${OUTPUT}" "${source}")
