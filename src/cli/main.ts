console.log("kiln")
